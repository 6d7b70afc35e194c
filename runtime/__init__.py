"""Shared runtime for the broadcast services: settings parsing, logging, lifecycle, HTTP serving.

Service packages import this and `schemas`, never each other.
"""
