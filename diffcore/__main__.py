"""``python -m diffcore`` runs the command-line tool (needs the ``cli`` extra)."""

from diffcore._cli import main

main()
