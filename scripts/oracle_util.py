"""Helpers the coremltools oracle scripts share (interop.py, compress_oracle.py,
fp16_oracle.py): keep fd 1 for the JSON answer, and import coremltools quietly."""

import contextlib
import os
import sys


@contextlib.contextmanager
def stdout_to_stderr():
    """Route everything written to fd 1 (Python or native code) to stderr while inside;
    yields a duplicate of the original fd 1 for the answer."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield saved
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def import_coremltools():
    """coremltools, with its warnings and its Linux import-time log lines ("Failed to load
    _MLModelProxy", ...) silenced."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import coremltools as ct

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return ct
