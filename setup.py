"""Build glue that pyproject.toml cannot say: which folders become which packages.

Everything else (metadata, dependencies, the version) is in pyproject.toml.
`schemas/` stays at the top of the repository as the one source of the JSON
Schemas (editors and config-examples point at it); the build carries it into
the wheel as the package data `reconciler/schemas/*.json`, which
`reconciler.config.schema` reads through importlib.resources. The templates of
`reconciler init` and the dashboard's templates and static files live inside
the package and ship as package data too.
"""

from setuptools import find_namespace_packages, setup

setup(
    # namespace packages: the data-only folders (templates, ui) are packages too, so
    # setuptools ships their files without warning that they might be importable
    packages=[*find_namespace_packages(include=["reconciler", "reconciler.*"],
                                       exclude=["*.__pycache__"]), "reconciler.schemas"],
    package_dir={"reconciler.schemas": "schemas"},
    package_data={"reconciler.schemas": ["*.json"], "reconciler": ["templates/**/*"],
                  "reconciler.daemon": ["ui/templates/*.html", "ui/static/*.js",
                                        "ui/static/*.css"]},
)
