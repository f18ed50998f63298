"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE in templates/Dockerfile).

The launcher runs `python main.py --runner=DataflowRunner ... --PARAM=VALUE`.
Running `pipeline/__main__.py` as a file would put the `pipeline/` directory
itself on sys.path, so this file calls the installed package's entry point
instead: the same `main` as `python -m pipeline` and `mailchimp-stream`.
"""
import logging

from pipeline.__main__ import main

if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    raise SystemExit(main())
