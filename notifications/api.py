"""(to be built in a later issue)"""

routes: list = []
