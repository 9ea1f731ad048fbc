"""Group naming: the one place that decides which group a user's sockets join."""


def user_group(user_id: int) -> str:
    return f"wizard-status.user.{user_id}"
