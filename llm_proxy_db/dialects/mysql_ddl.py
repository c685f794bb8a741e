"""The import path the released revision files use for :mod:`llm_proxy_db.dialects.mysql.ddl`.

``alembic/versions/*.py`` say ``from llm_proxy_db.dialects.mysql_ddl import ...``; editing them
would change their checksums in ``manifest.sum`` (and warn every database they ran on), so this
name stays, as the very same module object: a test that patches one patches the other.
"""

import sys

from llm_proxy_db.dialects.mysql import ddl

sys.modules[__name__] = ddl
