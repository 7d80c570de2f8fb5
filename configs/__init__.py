"""Default configurations of the studies, one module per experiment with ``get_config()``."""
