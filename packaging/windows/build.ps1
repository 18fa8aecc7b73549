# Windows build: one-folder xtwizard from a clean virtual environment, Authenticode-signed, then the
# Inno Setup installer (signed too), then the frozen self-test.  Run in PowerShell on Windows 10/11 or a
# windows-2022 runner with Python 3.11+ and Inno Setup 6 (choco install innosetup) installed.
#
#   pwsh packaging/windows/build.ps1                  # unsigned (a developer build)
#   $env:XTW_SIGN = "signtool"; pwsh packaging/windows/build.ps1   # signtool + a certificate in the store
#     (XTW_SIGN_THUMBPRINT = the code-signing certificate's SHA-1 thumbprint)
#   $env:XTW_SIGN = "trusted-signing"   # Azure Trusted Signing through its dlib (XTW_TS_DLIB, XTW_TS_METADATA)
#
# In CI, the Azure/trusted-signing-action can sign instead: run this script with XTW_SIGN unset, sign
# dist\xtwizard\**\*.exe,*.dll,*.pyd with the action, then run the "installer" part (-InstallerOnly).
param([switch]$InstallerOnly)
$ErrorActionPreference = "Stop"
$Root = Resolve-Path "$PSScriptRoot\..\.."
Set-Location $Root
$Venv = "$Root\build\packaging-venv"
$Dist = "$Root\dist"

function Invoke-Sign([string[]]$Files) {
    if (-not $env:XTW_SIGN) { Write-Host "== not signing (XTW_SIGN unset)"; return }
    $ts = "http://timestamp.acs.microsoft.com"
    foreach ($batch in ($Files | Group-Object { [math]::Floor($Files.IndexOf($_) / 50) })) {
        $list = $batch.Group
        if ($env:XTW_SIGN -eq "signtool") {
            & signtool sign /fd SHA256 /sha1 $env:XTW_SIGN_THUMBPRINT /tr $ts /td SHA256 $list
        } elseif ($env:XTW_SIGN -eq "trusted-signing") {
            & signtool sign /v /fd SHA256 /tr $ts /td SHA256 /dlib $env:XTW_TS_DLIB /dmdf $env:XTW_TS_METADATA $list
        } else { throw "XTW_SIGN must be signtool or trusted-signing" }
        if ($LASTEXITCODE -ne 0) { throw "signing failed" }
    }
    # Every signature must verify (qutebrowser checks the same in its release build).
    foreach ($f in $Files) {
        & signtool verify /pa /q $f
        if ($LASTEXITCODE -ne 0) { throw "signature does not verify: $f" }
    }
}

if (-not $InstallerOnly) {
    Write-Host "== clean build environment"
    if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv }
    py -3.11 -m venv $Venv
    & "$Venv\Scripts\python.exe" -m pip install -q --upgrade pip
    & "$Venv\Scripts\python.exe" -m pip install -q "$Root" "pyinstaller>=6.10,<7"
    if ($LASTEXITCODE -ne 0) { throw "pip install failed" }
    $Version = & "$Venv\Scripts\python.exe" -c "import xtwizard; print(xtwizard.__version__)"

    # Windows version resource (Explorer > Properties > Details; SmartScreen shows the company).
    $parts = ($Version.Split(".") + @("0", "0", "0"))[0..3] -join ", "
    $VersionFile = "$Root\build\version_info.txt"
    New-Item -ItemType Directory -Force "$Root\build" | Out-Null
    @"
VSVersionInfo(
  ffi=FixedFileInfo(filevers=($parts), prodvers=($parts)),
  kids=[StringFileInfo([StringTable('040904B0', [
    StringStruct('CompanyName', 'xtwizard'),
    StringStruct('FileDescription', 'xtwizard - cross-tenant mailbox migration'),
    StringStruct('FileVersion', '$Version'),
    StringStruct('InternalName', 'xtwizard'),
    StringStruct('OriginalFilename', 'xtwizard.exe'),
    StringStruct('ProductName', 'xtwizard'),
    StringStruct('ProductVersion', '$Version')])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])]
)
"@ | Set-Content -Encoding UTF8 $VersionFile
    $env:XTW_VERSION_FILE = $VersionFile

    Write-Host "== PyInstaller (one folder, windowed)"
    & "$Venv\Scripts\pyinstaller.exe" --noconfirm --clean --log-level WARN --distpath $Dist `
        --workpath "$Root\build\pyinstaller" "$Root\packaging\xtwizard.spec"
    if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }

    # Sign every executable and library in the tree (SmartScreen and Defender judge each file).
    $binaries = Get-ChildItem -Recurse "$Dist\xtwizard" -Include *.exe,*.dll,*.pyd | ForEach-Object FullName
    Invoke-Sign $binaries
} else {
    $Version = & "$Venv\Scripts\python.exe" -c "import xtwizard; print(xtwizard.__version__)"
}

Write-Host "== self-test of the frozen build (windowed: no console; exit code and log only)"
$log = "$Root\build\self-test.log"
$p = Start-Process -FilePath "$Dist\xtwizard\xtwizard.exe" -ArgumentList "--self-test","--log-file",$log `
    -Wait -PassThru -NoNewWindow
Get-Content $log
if ($p.ExitCode -ne 0) { throw "self-test failed (exit $($p.ExitCode)); see $log" }

Write-Host "== Inno Setup installer"
& iscc /Q "/DAppVersion=$Version" "/DSourceDir=$Dist\xtwizard" "/DOutputDir=$Dist" "$Root\packaging\windows\xtwizard.iss"
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
$installer = "$Dist\xtwizard-$Version-setup.exe"
Invoke-Sign @($installer)
Write-Host "== $installer"
