"""How analyses look: terminal tables, markdown files and the HTML report, all from the same objects."""
