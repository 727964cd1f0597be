# Windows Task Scheduler: run the re-apply hourly as a dedicated service account (on a management host with
# Python and provisioner installed). Run once in an elevated PowerShell; the task runs whether or not anyone is
# logged on. With Kerberos (the default) the account's own Windows logon supplies the ticket: no password stored
# by provisioner. Task Scheduler keeps no stderr: the run log (one start and one summary line per run, JSON) goes to
# --log-file, the metrics to --metrics-file (for windows_exporter's textfile collector), the details to --report.
$provisionerArgs = @(
    '--log-format json --log-file C:\ProgramData\provisioner\provisioner.log'
    'reapply --config C:\ProgramData\provisioner\provisioner.toml'
    '--report C:\ProgramData\provisioner\last-report.json'
    '--journal C:\ProgramData\provisioner\journal.jsonl'
    '--metrics-file "C:\Program Files\windows_exporter\textfile_inputs\provisioner.prom"'
) -join ' '
$action = New-ScheduledTaskAction -Execute 'C:\provisioner\Scripts\provisioner.exe' -Argument $provisionerArgs
$trigger = New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval (New-TimeSpan -Hours 1)
$settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Hours 2)
Register-ScheduledTask -TaskName 'provisioner reapply' -Action $action -Trigger $trigger -Settings $settings `
    -User 'CONTOSO\svc-provisioner' -Password (Read-Host 'Password for CONTOSO\svc-provisioner')
