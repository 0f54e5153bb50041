"""systeminfo's field labels in the display languages Windows ships.

Only the labels the reader needs: host name, OS name, OS version, OS
configuration, system type, hotfixes, network cards and domain.  A label
that is missing or wrong costs nothing but a fallback: the reader also finds
these fields by their place in the block and the shape of their values
(systeminfo always prints them in the same order), so a language not in this
table is read too.

What each table was checked against is written next to it, because a label
typed from memory looks exactly like one copied from a captured output
(tests/data/systeminfo/README.md lists the samples and where they were
published).  "Captured" means a real systeminfo output published on the web;
"unverified" means no such output was found and the labels are the
translations as the reader knows them.
"""

from __future__ import annotations

ROLES = ("host", "os_name", "os_version", "config", "arch", "hotfix", "nic", "domain")

LANGUAGES: dict[str, tuple[str, ...]] = {
    # captured: WES-NG's validation set (7/8.1/10/2003-2022 in English)
    "en": ("Host Name", "OS Name", "OS Version", "OS Configuration", "System Type", "Hotfix(s)", "Network Card(s)", "Domain"),
    # captured: WES-NG validation/10_1809_x64_enterprise_zh-cn_systeminfo.txt (GBK)
    "zh-CN": ("主机名", "OS 名称", "OS 版本", "OS 配置", "系统类型", "修补程序", "网卡", "域"),
    # captured, every label: a Windows 10 LTSC 1809 domain member (host to hotfix list) and a Windows 10 1709 (network cards)
    "zh-TW": ("主機名稱", "作業系統名稱", "作業系統版本", "作業系統設定", "系統類型", "Hotfix", "網路卡", "網域"),
    # captured, every label: a Windows 7 SP1 Professional, whole output
    "ja": ("ホスト名", "OS 名", "OS バージョン", "OS 構成", "システムの種類", "ホットフィックス", "ネットワーク カード", "ドメイン"),
    # captured: host name to system type and network cards (Windows 10 22H2, Windows 11 24H2); hotfix and domain only
    # from a hand transcription of the whole label list, not from a captured output
    "ko": ("호스트 이름", "OS 이름", "OS 버전", "OS 구성", "시스템 종류", "핫픽스", "네트워크 카드", "도메인"),
    # captured: WES-NG validation/7_sp1_x64_ultimaten_de_systeminfo.txt
    "de": ("Hostname", "Betriebssystemname", "Betriebssystemversion", "Betriebssystemkonfiguration", "Systemtyp", "Hotfix(es)",
           "Netzwerkkarte(n)", "Domäne"),
    # captured: WES-NG validation/7_sp1_x64_enterprise_fr_systeminfo_cmd.txt (and _powershell.txt)
    "fr": ("Nom de l'hôte", "Nom du système d'exploitation", "Version du système", "Configuration du système d'exploitation", "Type du système",
           "Correctif(s)", "Carte(s) réseau", "Domaine"),
    # captured: WES-NG validation/10_1809_x64_education_es_systeminfo.txt
    "es": ("Nombre de host", "Nombre del sistema operativo", "Versión del sistema operativo", "Configuración del sistema operativo",
           "Tipo de sistema", "Revisión(es)", "Tarjeta(s) de red", "Dominio"),
    # captured: WES-NG validation/10_1803_x64_pro_it_systeminfo.txt
    "it": ("Nome host", "Nome SO", "Versione SO", "Configurazione SO", "Tipo sistema", "Aggiornamenti rapidi", "Schede di rete", "Dominio"),
    # captured, every label: a Windows 11 24H2 Pro, whole output
    "pt-BR": ("Nome do host", "Nome do sistema operacional", "Versão do sistema operacional", "Configuração do sistema operacional",
              "Tipo de sistema", "Hotfix(es)", "Placa(s) de Rede", "Domínio"),
    # captured: WES-NG validation/srv_2012r2_x64_standard_ru_systeminfo.txt
    "ru": ("Имя узла", "Название ОС", "Версия ОС", "Параметры ОС", "Тип системы", "Исправление(я)", "Сетевые адаптеры", "Домен"),
    # unverified (WES-NG's "..._nl_systeminfo.txt" is an English output; no Dutch one was found)
    "nl": ("Hostnaam", "Naam van besturingssysteem", "Versie van besturingssysteem", "Configuratie van besturingssysteem", "Systeemtype",
           "Hotfix(es)", "Netwerkkaart(en)", "Domein"),
    # unverified: only domain, hotfix and network card labels are corroborated, by a thesis describing a Polish output field by field
    "pl": ("Nazwa hosta", "Nazwa systemu operacyjnego", "Wersja systemu operacyjnego", "Konfiguracja systemu operacyjnego", "Typ systemu",
           "Poprawki", "Karty sieciowe", "Domena"),
    # unverified (no captured Turkish output found)
    "tr": ("Ana Bilgisayar Adı", "İşletim Sistemi Adı", "İşletim Sistemi Sürümü", "İşletim Sistemi Yapılandırması", "Sistem Türü",
           "Düzeltmeler", "Ağ Kartları", "Etki Alanı"),
    # unverified (no captured Czech output found)
    "cs": ("Název hostitele", "Název operačního systému", "Verze operačního systému", "Konfigurace operačního systému", "Typ systému",
           "Opravy hotfix", "Síťové karty", "Doména"),
    # unverified (no captured Swedish output found)
    "sv": ("Värdnamn", "OS-namn", "OS-version", "OS-konfiguration", "Systemtyp", "Snabbkorrigeringar", "Nätverkskort", "Domän"),
}

VERIFIED = frozenset({"en", "zh-CN", "zh-TW", "ja", "de", "fr", "es", "it", "pt-BR", "ru"})  # every label seen in a captured output
PARTLY_VERIFIED = frozenset({"ko", "pl"})  # some labels seen (see the comments above)

# Words of the OS Configuration value that mean a domain controller ("Primary Domain Controller", "主域控制器", ...).
DOMAIN_CONTROLLER = ("domain controller", "域控制器", "網域控制站", "ドメイン コントローラー", "도메인 컨트롤러", "domänencontroller",
                     "contrôleur de domaine", "controlador de dominio", "controller di dominio", "controlador de domínio",
                     "контроллер домена", "domeincontroller", "kontroler domeny", "etki alanı denetleyicisi", "řadič domény",
                     "domänkontrollant")

LABELS: dict[str, str] = {label.lower(): role for labels in LANGUAGES.values() for role, label in zip(ROLES, labels)}
