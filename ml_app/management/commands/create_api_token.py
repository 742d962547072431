"""``manage.py create_api_token USERNAME``: an API token for a user (tokens can also be made in the admin)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Print the API token of USERNAME, creating the token (and with --create-user the user) if needed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create-user", action="store_true", help="create the user (no password) if missing")
        parser.add_argument("--regenerate", action="store_true", help="replace an existing token with a new one")

    def handle(self, *args, **options) -> None:
        users = get_user_model()
        try:
            user = users.objects.get(username=options["username"])
        except users.DoesNotExist:
            if not options["create_user"]:
                raise CommandError(f"No user '{options['username']}'; pass --create-user to create one.") from None
            user = users.objects.create_user(username=options["username"])
            user.set_unusable_password()
            user.save()
        if options["regenerate"]:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
