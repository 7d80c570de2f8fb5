"""Data files shipped with optlab, read from the installed package (never downloaded).

``matrices/`` holds SPD matrices from the SuiteSparse Matrix Collection in Matrix Market
format (load them with :func:`optlab.linalg.read_matrix_market`, e.g. ``"1138_bus"``).
Sources, licences, modifications and checksums are in ``PROVENANCE.md`` beside this file;
locate files with ``importlib.resources.files("optlab.datasets")``.
"""
