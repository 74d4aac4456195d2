import shutil

import setuptools

# setuptools packs everything under build/lib into the wheel, including a package left there by an
# earlier build (this template's levered_warehouse_sqlite, after you copied and renamed it): start clean.
shutil.rmtree("build", ignore_errors=True)
setuptools.setup()
