"""steerheal-online."""
