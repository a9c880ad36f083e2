"""One small adapter per checkpoint family; :mod:`..registry` orders them for detection."""
