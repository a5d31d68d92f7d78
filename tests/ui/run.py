#!/usr/bin/env python3
"""Runs one browser check of the web UI against a running server.

Usage: run.py CHECK --query URL --otlp-http URL --screenshots DIR [--token T]

CHECK names tests/ui/check_CHECK.py. Prints the check's figures as JSON on the last line; exits non-zero
with the reason when the check fails.
"""
import argparse
import importlib
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Env  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("check")
    parser.add_argument("--query", required=True)
    parser.add_argument("--otlp-http", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--token")
    args = parser.parse_args()
    env = Env(args.query, args.otlp_http, args.screenshots, args.token)
    module = importlib.import_module(f"check_{args.check}")
    try:
        figures = module.run(env) or {}
    except Exception:  # noqa: BLE001 — the reason goes to the Rust test's output
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
