"""Standardized output of the landing-zone connector: one small XML document per meter and UTC hour."""
