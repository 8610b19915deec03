"""The PostgreSQL wire protocol over tally's SQL (tally.sql): `tally serve --pg-port`."""
