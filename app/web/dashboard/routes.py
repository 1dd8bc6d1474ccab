"""The dashboard's routes, mounted under /dashboard by app.web.app (EXTRA_ROUTE_MODULES)."""

from __future__ import annotations

from starlette.routing import Route

from app.web.dashboard import keys, signin, tasks, usage

routes = [
    Route("/dashboard/", tasks.task_list, methods=["GET"]),
    Route("/dashboard/login", signin.start, methods=["GET"]),
    Route("/dashboard/callback", signin.callback, methods=["GET"]),
    Route("/dashboard/logout", signin.sign_out, methods=["POST"]),
    Route("/dashboard/tasks/{task_id:int}", tasks.task_page, methods=["GET"]),
    Route("/dashboard/tasks/{task_id:int}/logs", tasks.task_logs, methods=["GET"]),
    Route("/dashboard/tasks/{task_id:int}/cancel", tasks.cancel, methods=["POST"]),
    Route("/dashboard/tasks/{task_id:int}/retry", tasks.retry, methods=["POST"]),
    Route("/dashboard/keys", keys.keys_page, methods=["GET"]),
    Route("/dashboard/keys", keys.add_key, methods=["POST"]),
    Route("/dashboard/keys/delete", keys.delete_key, methods=["POST"]),
    Route("/dashboard/usage", usage.usage_page, methods=["GET"]),
]
