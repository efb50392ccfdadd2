"""STUB (issue 4 replaces this): execute a Plan on a Runtime."""
