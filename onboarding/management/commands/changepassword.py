"""`manage.py changepassword`, writing the password the way the services do.

Django's own command saves the whole user instance it read before prompting (which can take
minutes at a terminal), so it would write back whatever it read then. This one prompts the
same way, then calls `user_password_set`: the password alone, under the row lock, and every
credential the user held is void (their sockets close).
"""

from django.contrib.auth.management.commands import changepassword
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from onboarding.models import User
from onboarding.sign_ins import user_password_set
from outbox.models import Actor

MAX_TRIES = 3


class Command(changepassword.Command):
    def handle(self, *args, **options):
        username = options["username"] or changepassword.getpass.getuser()
        manager = User._default_manager.db_manager(options["database"])
        try:
            user = manager.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"user '{username}' does not exist") from None
        self.stdout.write(f"Changing password for user '{user}'")
        for _ in range(MAX_TRIES):
            password = self._get_pass()
            if password != self._get_pass("Password (again): "):
                self.stdout.write("Passwords do not match. Please try again.")
                continue
            try:
                validate_password(password, user)
            except ValidationError as error:
                self.stderr.write("\n".join(error.messages))
                continue
            user_password_set(user_id=user.pk, password=password, actor=Actor.system())
            return f"Password changed successfully for user '{user}'"
        raise CommandError(f"Aborting password change for user '{user}' after {MAX_TRIES} attempts")
