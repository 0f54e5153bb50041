"""systeminfo's field labels in the display languages Windows ships.

Only the labels the reader needs: host name, OS name, OS version, OS
configuration, system type, hotfixes and network cards.  en, zh-CN, de, fr,
es, it, nl and ru are as real outputs print them (Windows 7 to Server 2019
samples, e.g. the public WES-NG validation set); the others are Microsoft's
published translations as the reader knows them and are not checked
against a captured output here.  A label that is missing or wrong costs
nothing but a fallback: the reader also finds these fields by their place in
the block and the shape of their values (systeminfo always prints them in
the same order), so a language not in this table is read too.
"""

from __future__ import annotations

ROLES = ("host", "os_name", "os_version", "config", "arch", "hotfix", "nic")

LANGUAGES: dict[str, tuple[str, ...]] = {
    "en": ("Host Name", "OS Name", "OS Version", "OS Configuration", "System Type", "Hotfix(s)", "Network Card(s)"),
    "zh-CN": ("主机名", "OS 名称", "OS 版本", "OS 配置", "系统类型", "修补程序", "网卡"),
    "zh-TW": ("主機名稱", "作業系統名稱", "作業系統版本", "作業系統設定", "系統類型", "Hotfix", "網路卡"),
    "ja": ("ホスト名", "OS 名", "OS バージョン", "OS 構成", "システムの種類", "ホットフィックス", "ネットワーク カード"),
    "ko": ("호스트 이름", "OS 이름", "OS 버전", "OS 구성", "시스템 종류", "핫픽스", "네트워크 카드"),
    "de": ("Hostname", "Betriebssystemname", "Betriebssystemversion", "Betriebssystemkonfiguration", "Systemtyp", "Hotfix(es)", "Netzwerkkarte(n)"),
    "fr": ("Nom de l'hôte", "Nom du système d'exploitation", "Version du système", "Configuration du système d'exploitation", "Type du système",
           "Correctif(s)", "Carte(s) réseau"),
    "es": ("Nombre de host", "Nombre del sistema operativo", "Versión del sistema operativo", "Configuración del sistema operativo",
           "Tipo de sistema", "Revisión(es)", "Tarjeta(s) de red"),
    "it": ("Nome host", "Nome SO", "Versione SO", "Configurazione SO", "Tipo sistema", "Aggiornamenti rapidi", "Schede di rete"),
    "pt-BR": ("Nome do host", "Nome do sistema operacional", "Versão do sistema operacional", "Configuração do sistema operacional",
              "Tipo de sistema", "Hotfix(es)", "Placa(s) de Rede"),
    "ru": ("Имя узла", "Название ОС", "Версия ОС", "Параметры ОС", "Тип системы", "Исправление(я)", "Сетевые адаптеры"),
    "nl": ("Hostnaam", "Naam van besturingssysteem", "Versie van besturingssysteem", "Configuratie van besturingssysteem", "Systeemtype",
           "Hotfix(es)", "Netwerkkaart(en)"),
    "pl": ("Nazwa hosta", "Nazwa systemu operacyjnego", "Wersja systemu operacyjnego", "Konfiguracja systemu operacyjnego", "Typ systemu",
           "Poprawki", "Karty sieciowe"),
    "tr": ("Ana Bilgisayar Adı", "İşletim Sistemi Adı", "İşletim Sistemi Sürümü", "İşletim Sistemi Yapılandırması", "Sistem Türü",
           "Düzeltmeler", "Ağ Kartları"),
    "cs": ("Název hostitele", "Název operačního systému", "Verze operačního systému", "Konfigurace operačního systému", "Typ systému",
           "Opravy hotfix", "Síťové karty"),
    "sv": ("Värdnamn", "OS-namn", "OS-version", "OS-konfiguration", "Systemtyp", "Snabbkorrigeringar", "Nätverkskort"),
}

# Words of the OS Configuration value that mean a domain controller ("Primary Domain Controller", "主域控制器", ...).
DOMAIN_CONTROLLER = ("domain controller", "域控制器", "網域控制站", "ドメイン コントローラー", "도메인 컨트롤러", "domänencontroller",
                     "contrôleur de domaine", "controlador de dominio", "controller di dominio", "controlador de domínio",
                     "контроллер домена", "domeincontroller", "kontroler domeny", "etki alanı denetleyicisi", "řadič domény",
                     "domänkontrollant")

LABELS: dict[str, str] = {label.lower(): role for labels in LANGUAGES.values() for role, label in zip(ROLES, labels)}
LANGUAGE_OF: dict[str, str] = {label.lower(): lang for lang, labels in LANGUAGES.items() for label in labels}
