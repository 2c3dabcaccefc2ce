"""The peer support group's forms server: serves the handbook and, with it, the member forms."""
