"""The `rowloom` command and the README's examples."""
