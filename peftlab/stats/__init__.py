"""Statistics over records: the crossed seeds x examples engine, the nested fallback, calibration."""
