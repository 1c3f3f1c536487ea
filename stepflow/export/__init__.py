"""Exporters: a run as other tools read it (JUnit XML for CI test reports). Pure: each takes the
run as `stepflow show --json` prints it and returns text; the caller writes it where asked."""
