"""The Django example's manage.py: PARA_API_KEY_ID=<your API key's ID> python manage.py runserver"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paraproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
