"""``python -m llm_proxy_db`` runs the ``llm-proxy`` command line."""

from llm_proxy_db.cli import main

main()
