"""``python -m llm_proxy_db`` runs the ``llm-proxy-db`` command line."""

from llm_proxy_db.cli.fast_path import main

main()
