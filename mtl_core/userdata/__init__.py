"""The user's own data: CSV files inspected and imported as task suites (:mod:`.csv_import`); the
suites themselves are registered by :mod:`mtl_core.suites.user_csv`."""
