"""(to be built in a later issue)"""
