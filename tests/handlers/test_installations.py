"""installation and installation_repositories events keep the installations and repositories tables current."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app.models import Installation, Repository
from tests.support.webhooks import example


@pytest.fixture
def app(make_draftsmith, database_url):
    return make_draftsmith(database_url=database_url)


def deliver(app, event, payload):
    assert app.post_webhook(event, payload).status_code == 202
    app.join()


def installation(app, installation_id) -> Installation | None:
    with Session(app.engine) as session:
        return session.get(Installation, installation_id)


def repositories(app, installation_id) -> dict[str, bool]:
    """full_name -> removed, for the installation's repositories."""
    with Session(app.engine) as session:
        rows = session.exec(select(Repository).where(Repository.installation_id == installation_id)).all()
        return {row.full_name: row.removed for row in rows}


def test_installing_the_app_records_the_account_and_its_repositories(app):
    payload = example("installation", "created")
    installation_id = payload["installation"]["id"]

    deliver(app, "installation", payload)

    row = installation(app, installation_id)
    assert (row.account_login, row.suspended, row.deleted) == ("Codertocat", False, False)
    assert repositories(app, installation_id) == {"Codertocat/Hello-World": False}


def test_suspending_and_unsuspending_is_tracked(app):
    suspend = example("installation", "suspend")
    installation_id = suspend["installation"]["id"]

    deliver(app, "installation", suspend)
    suspended = installation(app, installation_id).suspended
    deliver(app, "installation", example("installation", "unsuspend"))

    assert suspended is True
    assert installation(app, installation_id).suspended is False


def test_uninstalling_marks_the_installation_deleted_and_its_repositories_removed(app):
    created = example("installation", "created")
    deleted = example("installation", "deleted")
    # Same installation for both, as GitHub would send them.
    deleted["installation"] = created["installation"]
    installation_id = created["installation"]["id"]

    deliver(app, "installation", created)
    deliver(app, "installation", deleted)

    assert installation(app, installation_id).deleted is True
    assert repositories(app, installation_id) == {"Codertocat/Hello-World": True}


def test_repositories_added_and_removed_are_tracked(app):
    created = example("installation", "created")
    installation_id = created["installation"]["id"]
    removed = example("installation_repositories", "removed")
    removed["installation"] = created["installation"]
    removed["repositories_removed"] = created["repositories"]

    deliver(app, "installation", created)
    deliver(app, "installation_repositories", example("installation_repositories", "added"))
    deliver(app, "installation_repositories", removed)

    assert repositories(app, installation_id) == {"Codertocat/Hello-World": True, "Codertocat/Space": False}


def test_repositories_added_to_an_installation_we_never_heard_of_create_it(app):
    payload = example("installation_repositories", "added")
    installation_id = payload["installation"]["id"]
    assert installation(app, installation_id) is None

    deliver(app, "installation_repositories", payload)

    assert installation(app, installation_id).account_login == "Codertocat"
    assert repositories(app, installation_id) == {"Codertocat/Space": False}


def test_reinstalling_after_an_uninstall_clears_the_deleted_mark(app):
    created = example("installation", "created")
    deleted = example("installation", "deleted")
    deleted["installation"] = created["installation"]

    for payload in (created, deleted, created):
        deliver(app, "installation", payload)

    assert installation(app, created["installation"]["id"]).deleted is False
    assert repositories(app, created["installation"]["id"]) == {"Codertocat/Hello-World": False}
