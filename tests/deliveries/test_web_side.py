"""What a web process loads of the delivery log: the recorder, the SQLite store and the direct enqueuer, nothing heavy."""

from __future__ import annotations

import subprocess
import sys


def test_the_web_side_of_the_delivery_log_loads_no_orm_broker_or_github_client():
    # Each costs a web process megabytes it never uses; the SQL store and the broker enqueuer load them on demand.
    code = (
        "import sys\n"
        "import app.web.app, app.web.webhooks, app.deliveries.recorder, app.deliveries.enqueuers\n"
        "from app.deliveries.stores import store_for\n"
        "import tempfile, os\n"
        "store_for('sqlite:///' + os.path.join(tempfile.mkdtemp(), 'd.db'), None).close()\n"
        "heavy = {'sqlalchemy', 'sqlmodel', 'dramatiq', 'redis', 'githubkit'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
