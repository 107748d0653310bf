from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.actor import Actor
from tenants.management.commands.create_company import _describe
from tenants.models import Company
from tenants.roles import Role
from tenants.services import member_add


class Command(BaseCommand):
    help = "Add a user to a company with a role (owner, admin, editor, viewer); creates the user if new."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("company", help="The company's slug.")
        parser.add_argument("role", choices=[r.value for r in Role])
        parser.add_argument("--email", default="")
        parser.add_argument("--limited", action="store_true",
                            help="Limit the member to the agents granted on their Object permissions page.")

    def handle(self, *args, username, company, role, email, limited, **options):
        try:
            target = Company.objects.get(slug=company)
        except Company.DoesNotExist:
            raise CommandError(f"No company with slug {company!r}.") from None
        try:
            membership, created = member_add(actor=Actor.system("manage.py add_member"), username=username,
                                             company=target, role=role, email=email,
                                             limited_to_granted_objects=limited)
        except ValidationError as exc:
            raise CommandError(_describe(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"{membership}."))
        if created:
            self.stdout.write(f"User {username} is new and has no password yet: "
                              f"run `manage.py changepassword {username}`.")
