"""Operations: serving a part, backup/restore, outbox and dead-letter inspection, demo data.

The ``rapport`` command line (:mod:`shared.cli`) is a thin argument parser over these
modules; each is usable (and tested) on its own.
"""
