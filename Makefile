# One command surface, the same locally and in CI. Each target is a thin alias of scripts/.
.PHONY: setup lint format type test check bench soak demo up down status

setup:
	scripts/setup

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

type: setup
	.venv/bin/mypy

test:
	scripts/test

check: test
	scripts/lint

bench: setup
	.venv/bin/python -m bench

soak: setup
	.venv/bin/python -m bench.soak

demo:
	scripts/demo

up: setup
	.venv/bin/python -m devstack up

down:
	.venv/bin/python -m devstack down

status:
	.venv/bin/python -m devstack status
