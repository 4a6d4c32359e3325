# The root is read-only squashfs under a RAM overlay: never write .pyc files there.
export PYTHONDONTWRITEBYTECODE=1
