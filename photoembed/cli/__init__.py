"""The command-line front end: thin handlers over the library's services."""
