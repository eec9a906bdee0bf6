"""SQL databases as a source: any SQLAlchemy URL, read in chunks through a server-side
cursor, converted with the table source's column map, and brought up to date by a
high-water mark kept beside the dataset (see `converters.sql.convert`)."""
