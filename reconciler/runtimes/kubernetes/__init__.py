"""The Kubernetes runtime: warm pools as Deployments, one namespace per calling account.

`manifests` is pure (also used by `reconciler render`); `runtime` talks to the
API server with the official client; `lease` elects a single active daemon.
Only this package imports `kubernetes`, and only when a runtime is opened.
"""
