"""Pure pipeline logic: no Dagster imports anywhere below this package."""
