from django.apps import AppConfig


class RetellConfigConfig(AppConfig):
    name = "retell_config"
    verbose_name = "Retell configuration"
