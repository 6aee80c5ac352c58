"""Serving: `export` writes a model's SavedModel (and LiteRT model) with its decisions inside,
`runtime.ServingFunction` answers requests from that folder, `decisions` and `calibration` fit the
thresholds and temperature the export carries.
"""
