from django.contrib.admin.apps import AdminConfig


class PortalAdminConfig(AdminConfig):
    """django.contrib.admin with portal.admin_site.PortalAdminSite as `admin.site`.
    https://docs.djangoproject.com/en/5.2/ref/contrib/admin/#overriding-the-default-admin-site"""

    default_site = "portal.admin_site.PortalAdminSite"
