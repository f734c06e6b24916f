"""Everything that speaks SQL: the connection, the DDL migrations and the analytics queries."""
