"""The dashboard's pages, one file each, shown in file-name order by app.py."""
