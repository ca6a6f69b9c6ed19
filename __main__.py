"""flask-stack: a Flask app in production, one `pulumi up` per environment.

Load and check the whole stack config, build the site for its platform, roll the app onto the
site's hosts, export what the user needs. Everything else lives in stack/.
"""

import pulumi

from stack import program

outputs = program.run()
for name, value in outputs.items():
    pulumi.export(name, value)
