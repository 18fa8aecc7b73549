; Inno Setup 6 script: per-user install by default (no admin rights needed), or per machine.
; iscc /DAppVersion=0.1.0 /DSourceDir=dist\xtwizard /DOutputDir=dist packaging\windows\xtwizard.iss
; The installer is signed afterwards by build.ps1 (SignTool= is not used so that CI can sign with
; Azure Trusted Signing too).
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\xtwizard"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
AppId={{6C0F5B52-3D43-4C1E-9B8E-6A2D7C1F4E21}
AppName=xtwizard
AppVersion={#AppVersion}
AppPublisher=xtwizard
AppComments=Move Exchange Online mailboxes between Microsoft 365 tenants
DefaultDirName={autopf}\xtwizard
DefaultGroupName=xtwizard
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename=xtwizard-{#AppVersion}-setup
SetupIconFile=..\..\resources\xtwizard.ico
UninstallDisplayIcon={app}\xtwizard.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\xtwizard"; Filename: "{app}\xtwizard.exe"
Name: "{autoprograms}\xtwizard (rehearsal with simulated tenants)"; Filename: "{app}\xtwizard.exe"; Parameters: "--demo"
Name: "{autodesktop}\xtwizard"; Filename: "{app}\xtwizard.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\xtwizard.exe"; Description: "{cm:LaunchProgram,xtwizard}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only the program folder. Projects, logs and keyring entries are the user's: README "Remove everything".
Type: filesandordirs; Name: "{app}"
