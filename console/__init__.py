"""The operator console: a web page to watch and steer every campaign (docs/console.md).

It reads the same views the CLI reads and acts through the same control events and
statements the CLI uses: no second path to the truth.
"""
