"""levered-cli requires each member distribution at exactly its own version, read from setup.cfg."""

import configparser
import pathlib

import setuptools

config = configparser.ConfigParser()
config.read(pathlib.Path(__file__).with_name("setup.cfg"))
version = config["metadata"]["version"]
members = config["levered_cli"]["members"].split()

setuptools.setup(install_requires=[f"{name}=={version}" for name in members])
