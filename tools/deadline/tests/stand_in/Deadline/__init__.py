"""A stand-in for the parts of Deadline 10's Python plug-in API FarmBridge uses.

Modelled on the public Deadline Scripting Reference (Deadline.Plugins.DeadlinePlugin,
Deadline.Scripting.FileUtils): names and behaviour of the members, not Thinkbox code.
`Worker` plays the Deadline Worker's part for one Simple-plug-in task.
"""
