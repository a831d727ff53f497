from symprop.cli import entry

entry()
