from app.tasks.links import task_token, task_url, valid_task_token


def test_a_token_opens_only_its_own_task_under_its_own_secret():
    token = task_token("secret", 7)
    assert valid_task_token("secret", 7, token)
    assert not valid_task_token("secret", 8, token)
    assert not valid_task_token("other", 7, token)
    assert not valid_task_token(None, 7, token) and not valid_task_token("secret", 7, None)


def test_a_task_link_is_never_the_webhook_signature_of_anything():
    import hashlib
    import hmac

    assert task_token("secret", 7) not in hmac.new(b"secret", b"7", hashlib.sha256).hexdigest()


def test_no_public_url_or_secret_means_no_link():
    assert task_url(None, "secret", 7) is None and task_url("https://ds", None, 7) is None
    assert task_url("https://ds/", "secret", 7) == f"https://ds/tasks/7?token={task_token('secret', 7)}"
