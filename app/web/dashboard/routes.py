"""The dashboard's routes, mounted under /dashboard by app.web.app (EXTRA_ROUTE_MODULES)."""

from __future__ import annotations

from starlette.routing import Route

from app.web.dashboard import signin, tasks

routes = [
    Route("/dashboard/", tasks.task_list, methods=["GET"]),
    Route("/dashboard/login", signin.start, methods=["GET"]),
    Route("/dashboard/callback", signin.callback, methods=["GET"]),
    Route("/dashboard/logout", signin.sign_out, methods=["POST"]),
    Route("/dashboard/tasks/{task_id:int}", tasks.task_page, methods=["GET"]),
    Route("/dashboard/tasks/{task_id:int}/logs", tasks.task_logs, methods=["GET"]),
    Route("/dashboard/tasks/{task_id:int}/cancel", tasks.cancel, methods=["POST"]),
    Route("/dashboard/tasks/{task_id:int}/retry", tasks.retry, methods=["POST"]),
]
