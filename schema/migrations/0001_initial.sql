-- bai-manager initial schema.
--
-- Table, column, enum and index names follow Backend.AI Manager 23.09 (with the 24.09 columns the
-- manager uses), so that the original's fixture files and operators' SQL work unchanged.
-- ResourceSlot columns are JSONB objects of decimal strings. Enums whose Python side is `EnumType`
-- store member NAMES (kernelstatus, sessionstatus, agentstatus, ...); `EnumValueType` ones store
-- VALUES (userstatus, userrole, vfolderpermission, ...).

CREATE EXTENSION IF NOT EXISTS "uuid-ossp";

-- ---------------------------------------------------------------------------------------------
-- enums
-- ---------------------------------------------------------------------------------------------
CREATE TYPE kernelstatus AS ENUM (
    'PENDING', 'SCHEDULED', 'PREPARING', 'BUILDING', 'PULLING', 'RUNNING', 'RESTARTING',
    'RESIZING', 'SUSPENDED', 'TERMINATING', 'TERMINATED', 'ERROR', 'CANCELLED'
);
CREATE TYPE sessionstatus AS ENUM (
    'PENDING', 'SCHEDULED', 'PULLING', 'PREPARING', 'RUNNING', 'RESTARTING', 'RUNNING_DEGRADED',
    'TERMINATING', 'TERMINATED', 'ERROR', 'CANCELLED'
);
CREATE TYPE sessionresult AS ENUM ('UNDEFINED', 'SUCCESS', 'FAILURE');
CREATE TYPE agentstatus AS ENUM ('ALIVE', 'LOST', 'RESTARTING', 'TERMINATED');
CREATE TYPE userstatus AS ENUM ('active', 'inactive', 'deleted', 'before-verification');
CREATE TYPE userrole AS ENUM ('superadmin', 'admin', 'user', 'monitor');
CREATE TYPE defaultforunspecified AS ENUM ('LIMITED', 'UNLIMITED');
CREATE TYPE templatetype AS ENUM ('TASK', 'CLUSTER');
CREATE TYPE imagetype AS ENUM ('COMPUTE', 'SYSTEM', 'SERVICE');
CREATE TYPE projecttype AS ENUM ('general', 'model-store');
CREATE TYPE vfolderpermission AS ENUM ('ro', 'rw', 'wd');
CREATE TYPE vfolderusagemode AS ENUM ('general', 'model', 'data');
CREATE TYPE vfolderownershiptype AS ENUM ('user', 'group');
CREATE TYPE vfolderinvitationstate AS ENUM ('pending', 'canceled', 'accepted', 'rejected');
-- 23.09 `KernelRole` (EnumType: names).
CREATE TYPE kernelrole AS ENUM ('INFERENCE', 'COMPUTE', 'SYSTEM');

-- ---------------------------------------------------------------------------------------------
-- resource policies
-- ---------------------------------------------------------------------------------------------
CREATE TABLE keypair_resource_policies (
    name                                varchar(256) PRIMARY KEY,
    created_at                          timestamptz NOT NULL DEFAULT now(),
    default_for_unspecified             defaultforunspecified NOT NULL DEFAULT 'LIMITED',
    total_resource_slots                jsonb NOT NULL DEFAULT '{}',
    max_session_lifetime                integer NOT NULL DEFAULT 0,
    max_concurrent_sessions             integer NOT NULL DEFAULT 30,
    max_pending_session_count           integer,
    max_pending_session_resource_slots  jsonb,
    max_concurrent_sftp_sessions        integer NOT NULL DEFAULT 1,
    max_containers_per_session          integer NOT NULL DEFAULT 1,
    -- 22.09/23.09 keep the vfolder limits on the keypair policy; later versions moved them.
    max_vfolder_count                   integer NOT NULL DEFAULT 0,
    max_vfolder_size                    bigint NOT NULL DEFAULT 0,
    idle_timeout                        bigint NOT NULL DEFAULT 0,
    allowed_vfolder_hosts               jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE user_resource_policies (
    name                                 varchar(256) PRIMARY KEY,
    created_at                           timestamptz NOT NULL DEFAULT now(),
    max_vfolder_count                    integer NOT NULL DEFAULT 0,
    max_vfolder_size                     bigint NOT NULL DEFAULT -1,
    max_quota_scope_size                 bigint NOT NULL DEFAULT -1,
    max_session_count_per_model_session  integer NOT NULL DEFAULT 10,
    max_customized_image_count           integer NOT NULL DEFAULT 3
);

CREATE TABLE project_resource_policies (
    name                  varchar(256) PRIMARY KEY,
    created_at            timestamptz NOT NULL DEFAULT now(),
    max_vfolder_count     integer NOT NULL DEFAULT 0,
    max_vfolder_size      bigint NOT NULL DEFAULT -1,
    max_quota_scope_size  bigint NOT NULL DEFAULT -1
);

-- The 22.09 fixtures predate user/project policies; 23.09's migration seeds these rows too.
INSERT INTO user_resource_policies (name) VALUES ('default');
INSERT INTO project_resource_policies (name) VALUES ('default');

-- ---------------------------------------------------------------------------------------------
-- tenancy
-- ---------------------------------------------------------------------------------------------
CREATE TABLE domains (
    name                       varchar(64) PRIMARY KEY,
    description                varchar(512),
    is_active                  boolean NOT NULL DEFAULT true,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    modified_at                timestamptz NOT NULL DEFAULT now(),
    total_resource_slots       jsonb NOT NULL DEFAULT '{}',
    allowed_vfolder_hosts      jsonb NOT NULL DEFAULT '{}',
    allowed_docker_registries  varchar[] NOT NULL DEFAULT '{}',
    integration_id             varchar(512),
    dotfiles                   bytea NOT NULL DEFAULT '\x90'
);

CREATE TABLE groups (
    id                     uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    name                   varchar(64) NOT NULL,
    description            varchar(512),
    is_active              boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    modified_at            timestamptz NOT NULL DEFAULT now(),
    integration_id         varchar(512),
    domain_name            varchar(64) NOT NULL
                           REFERENCES domains (name) ON UPDATE CASCADE ON DELETE CASCADE,
    total_resource_slots   jsonb NOT NULL DEFAULT '{}',
    allowed_vfolder_hosts  jsonb NOT NULL DEFAULT '{}',
    dotfiles               bytea NOT NULL DEFAULT '\x90',
    resource_policy        varchar(256) NOT NULL DEFAULT 'default'
                           REFERENCES project_resource_policies (name),
    type                   projecttype NOT NULL DEFAULT 'general',
    container_registry     jsonb,
    CONSTRAINT uq_groups_name_domain_name UNIQUE (name, domain_name)
);
CREATE INDEX ix_groups_domain_name ON groups (domain_name);

CREATE TABLE users (
    uuid                  uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    username              varchar(64) UNIQUE,
    email                 varchar(64) NOT NULL,
    -- bcrypt hash (`$2b$12$...`), written by `PasswordColumn` in the original.
    password              varchar,
    need_password_change  boolean NOT NULL DEFAULT false,
    password_changed_at   timestamptz DEFAULT now(),
    full_name             varchar(64),
    description           varchar(500),
    status                userstatus NOT NULL DEFAULT 'active',
    status_info           varchar,
    created_at            timestamptz NOT NULL DEFAULT now(),
    modified_at           timestamptz NOT NULL DEFAULT now(),
    integration_id        varchar(512),
    domain_name           varchar(64) REFERENCES domains (name),
    role                  userrole NOT NULL DEFAULT 'user',
    allowed_client_ip     cidr[],
    totp_key              varchar(32),
    totp_activated        boolean NOT NULL DEFAULT false,
    totp_activated_at     timestamptz,
    resource_policy       varchar(256) NOT NULL DEFAULT 'default'
                          REFERENCES user_resource_policies (name),
    sudo_session_enabled  boolean NOT NULL DEFAULT false,
    main_access_key       varchar(20)
);
CREATE UNIQUE INDEX ix_users_email ON users (email);
CREATE INDEX ix_users_domain_name ON users (domain_name);

CREATE TABLE association_groups_users (
    id        uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    user_id   uuid NOT NULL REFERENCES users (uuid) ON UPDATE CASCADE ON DELETE CASCADE,
    group_id  uuid NOT NULL REFERENCES groups (id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT uq_association_user_id_group_id UNIQUE (user_id, group_id)
);

CREATE TABLE keypairs (
    user_id           varchar(256),
    access_key        varchar(20) PRIMARY KEY,
    secret_key        varchar(40),
    is_active         boolean NOT NULL DEFAULT true,
    is_admin          boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    modified_at       timestamptz NOT NULL DEFAULT now(),
    last_used         timestamptz,
    rate_limit        integer NOT NULL DEFAULT 5000,
    num_queries       integer NOT NULL DEFAULT 0,
    ssh_public_key    text,
    ssh_private_key   text,
    "user"            uuid NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    resource_policy   varchar(256) NOT NULL REFERENCES keypair_resource_policies (name),
    dotfiles          bytea NOT NULL DEFAULT '\x90',
    bootstrap_script  varchar(65536) NOT NULL DEFAULT ''
);
CREATE INDEX ix_keypairs_user_id ON keypairs (user_id);
CREATE INDEX ix_keypairs_user ON keypairs ("user");
CREATE INDEX ix_keypairs_is_active ON keypairs (is_active);

ALTER TABLE users ADD CONSTRAINT fk_users_main_access_key_keypairs
    FOREIGN KEY (main_access_key) REFERENCES keypairs (access_key) ON DELETE SET NULL;

-- ---------------------------------------------------------------------------------------------
-- scaling groups
-- ---------------------------------------------------------------------------------------------
CREATE TABLE scaling_groups (
    name               varchar(64) PRIMARY KEY,
    description        varchar(512),
    is_active          boolean NOT NULL DEFAULT true,
    is_public          boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    wsproxy_addr       varchar(1024),
    wsproxy_api_token  varchar(128),
    driver             varchar(64) NOT NULL,
    driver_opts        jsonb NOT NULL DEFAULT '{}',
    scheduler          varchar(64) NOT NULL,
    use_host_network   boolean NOT NULL DEFAULT false,
    scheduler_opts     jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE sgroups_for_domains (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    scaling_group  varchar(64) NOT NULL
                   REFERENCES scaling_groups (name) ON UPDATE CASCADE ON DELETE CASCADE,
    domain         varchar(64) NOT NULL
                   REFERENCES domains (name) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT uq_sgroup_domain UNIQUE (scaling_group, domain)
);

CREATE TABLE sgroups_for_groups (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    scaling_group  varchar(64) NOT NULL
                   REFERENCES scaling_groups (name) ON UPDATE CASCADE ON DELETE CASCADE,
    "group"        uuid NOT NULL REFERENCES groups (id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT uq_sgroup_ugroup UNIQUE (scaling_group, "group")
);

CREATE TABLE sgroups_for_keypairs (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    scaling_group  varchar(64) NOT NULL
                   REFERENCES scaling_groups (name) ON UPDATE CASCADE ON DELETE CASCADE,
    access_key     varchar(20) NOT NULL
                   REFERENCES keypairs (access_key) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT uq_sgroup_akey UNIQUE (scaling_group, access_key)
);

-- ---------------------------------------------------------------------------------------------
-- agents
-- ---------------------------------------------------------------------------------------------
CREATE TABLE agents (
    id                             varchar(64) PRIMARY KEY,
    status                         agentstatus NOT NULL,
    status_changed                 timestamptz,
    region                         varchar(64) NOT NULL,
    scaling_group                  varchar(64) NOT NULL DEFAULT 'default'
                                   REFERENCES scaling_groups (name),
    schedulable                    boolean NOT NULL DEFAULT true,
    available_slots                jsonb NOT NULL DEFAULT '{}',
    occupied_slots                 jsonb NOT NULL DEFAULT '{}',
    addr                           varchar(128) NOT NULL,
    public_host                    varchar(256),
    public_key                     varchar(40),
    first_contact                  timestamptz DEFAULT now(),
    lost_at                        timestamptz,
    version                        varchar(64) NOT NULL DEFAULT '',
    architecture                   varchar(32) NOT NULL DEFAULT 'x86_64',
    compute_plugins                jsonb NOT NULL DEFAULT '{}',
    auto_terminate_abusing_kernel  boolean NOT NULL DEFAULT false
);
CREATE INDEX ix_agents_status ON agents (status);
CREATE INDEX ix_agents_scaling_group ON agents (scaling_group);

-- ---------------------------------------------------------------------------------------------
-- images
-- ---------------------------------------------------------------------------------------------
CREATE TABLE images (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    name           varchar NOT NULL,
    project        varchar,
    image          varchar,
    created_at     timestamptz NOT NULL DEFAULT now(),
    tag            text,
    registry       varchar NOT NULL,
    registry_id    uuid,
    architecture   varchar NOT NULL DEFAULT 'x86_64',
    config_digest  char(72) NOT NULL,
    size_bytes     bigint NOT NULL,
    is_local       boolean NOT NULL DEFAULT false,
    type           imagetype NOT NULL DEFAULT 'COMPUTE',
    accelerators   varchar,
    labels         jsonb NOT NULL DEFAULT '{}',
    resources      jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT uq_image_name_architecture UNIQUE (name, architecture)
);
CREATE INDEX ix_images_name ON images (name);

CREATE TABLE image_aliases (
    id     uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    alias  varchar UNIQUE,
    image  uuid REFERENCES images (id) ON DELETE CASCADE
);

-- ---------------------------------------------------------------------------------------------
-- sessions and kernels
-- ---------------------------------------------------------------------------------------------
CREATE TABLE sessions (
    id                   uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    creation_id          varchar(32),
    name                 varchar(64),
    session_type         varchar(64) NOT NULL DEFAULT 'INTERACTIVE',
    priority             integer NOT NULL DEFAULT 10,
    cluster_mode         varchar(16) NOT NULL DEFAULT 'single-node',
    cluster_size         integer NOT NULL DEFAULT 1,
    agent_ids            varchar[],
    scaling_group_name   varchar(64) REFERENCES scaling_groups (name),
    target_sgroup_names  varchar(64)[] DEFAULT '{}',
    domain_name          varchar(64) NOT NULL REFERENCES domains (name),
    group_id             uuid NOT NULL REFERENCES groups (id),
    user_uuid            uuid NOT NULL REFERENCES users (uuid),
    access_key           varchar(20) REFERENCES keypairs (access_key),
    images               varchar(512)[],
    tag                  varchar(64),
    occupying_slots      jsonb NOT NULL DEFAULT '{}',
    requested_slots      jsonb NOT NULL DEFAULT '{}',
    vfolder_mounts       jsonb,
    environ              jsonb,
    bootstrap_script     varchar(16384),
    use_host_network     boolean NOT NULL DEFAULT false,
    timeout              bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    terminated_at        timestamptz,
    starts_at            timestamptz,
    status               sessionstatus NOT NULL DEFAULT 'PENDING',
    status_info          text,
    status_data          jsonb,
    status_history       jsonb,
    callback_url         text,
    startup_command      text,
    result               sessionresult NOT NULL DEFAULT 'UNDEFINED',
    num_queries          bigint NOT NULL DEFAULT 0,
    last_stat            jsonb
);
CREATE INDEX ix_sessions_name ON sessions (name);
CREATE INDEX ix_sessions_access_key ON sessions (access_key);
CREATE INDEX ix_sessions_created_at ON sessions (created_at);
CREATE INDEX ix_session_status_with_priority ON sessions (status, priority);
CREATE INDEX ix_sessions_updated_order ON sessions (greatest(created_at, terminated_at), id);
CREATE INDEX ix_sessions_vfolder_mounts ON sessions USING gin (vfolder_mounts);

CREATE TABLE session_dependencies (
    session_id  uuid NOT NULL REFERENCES sessions (id) ON UPDATE CASCADE ON DELETE CASCADE,
    depends_on  uuid NOT NULL REFERENCES sessions (id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT sess_dep_pk PRIMARY KEY (session_id, depends_on)
);

CREATE TABLE kernels (
    id                   uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    session_id           uuid NOT NULL REFERENCES sessions (id),
    session_creation_id  varchar(32),
    session_name         varchar(64),
    session_type         varchar(64) NOT NULL DEFAULT 'INTERACTIVE',
    cluster_mode         varchar(16) NOT NULL DEFAULT 'single-node',
    cluster_size         integer NOT NULL DEFAULT 1,
    cluster_role         varchar(16) NOT NULL DEFAULT 'main',
    cluster_idx          integer NOT NULL DEFAULT 0,
    local_rank           integer NOT NULL DEFAULT 0,
    cluster_hostname     varchar(64) NOT NULL,
    role                 kernelrole NOT NULL DEFAULT 'COMPUTE',
    scaling_group        varchar(64) REFERENCES scaling_groups (name),
    agent                varchar(64) REFERENCES agents (id),
    agent_addr           varchar(128),
    domain_name          varchar(64) NOT NULL REFERENCES domains (name),
    group_id             uuid NOT NULL REFERENCES groups (id),
    user_uuid            uuid NOT NULL REFERENCES users (uuid),
    access_key           varchar(20) REFERENCES keypairs (access_key),
    image                varchar(512),
    architecture         varchar(32) NOT NULL DEFAULT 'x86_64',
    registry             varchar(512),
    tag                  varchar(64),
    container_id         varchar(64),
    occupied_slots       jsonb NOT NULL DEFAULT '{}',
    requested_slots      jsonb NOT NULL DEFAULT '{}',
    occupied_shares      jsonb NOT NULL DEFAULT '{}',
    environ              text[],
    mounts               text[],
    mount_map            jsonb DEFAULT '{}',
    vfolder_mounts       jsonb,
    attached_devices     jsonb DEFAULT '{}',
    resource_opts        jsonb DEFAULT '{}',
    bootstrap_script     varchar(16384),
    kernel_host          varchar(128),
    repl_in_port         integer NOT NULL DEFAULT 0,
    repl_out_port        integer NOT NULL DEFAULT 0,
    stdin_port           integer NOT NULL DEFAULT 0,
    stdout_port          integer NOT NULL DEFAULT 0,
    service_ports        jsonb,
    preopen_ports        integer[],
    use_host_network     boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    terminated_at        timestamptz,
    starts_at            timestamptz,
    status               kernelstatus NOT NULL DEFAULT 'PENDING',
    status_changed       timestamptz,
    status_info          text,
    status_data          jsonb,
    status_history       jsonb,
    callback_url         text,
    startup_command      text,
    result               sessionresult NOT NULL DEFAULT 'UNDEFINED',
    internal_data        jsonb,
    container_log        bytea,
    num_queries          bigint NOT NULL DEFAULT 0,
    last_stat            jsonb
);
CREATE INDEX ix_kernels_session_id ON kernels (session_id);
CREATE INDEX ix_kernels_agent ON kernels (agent);
CREATE INDEX ix_kernels_access_key ON kernels (access_key);
CREATE INDEX ix_kernels_status ON kernels (status);
CREATE INDEX ix_kernels_sess_id_role ON kernels (session_id, cluster_role);
CREATE INDEX ix_kernels_status_role ON kernels (status, cluster_role);
CREATE INDEX ix_kernels_updated_order
    ON kernels (greatest(created_at, terminated_at, status_changed), id);
CREATE UNIQUE INDEX ix_kernels_unique_sess_token ON kernels (access_key, session_name)
    WHERE status NOT IN ('TERMINATED', 'CANCELLED') AND cluster_role = 'main';

-- ---------------------------------------------------------------------------------------------
-- presets and templates
-- ---------------------------------------------------------------------------------------------
CREATE TABLE resource_presets (
    name            varchar(256) PRIMARY KEY,
    resource_slots  jsonb NOT NULL,
    shared_memory   bigint
);

CREATE TABLE session_templates (
    id           uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    is_active    boolean NOT NULL DEFAULT true,
    domain_name  varchar(64) NOT NULL REFERENCES domains (name),
    group_id     uuid REFERENCES groups (id),
    user_uuid    uuid NOT NULL REFERENCES users (uuid),
    type         templatetype NOT NULL DEFAULT 'TASK',
    name         varchar(128),
    template     jsonb NOT NULL
);
CREATE INDEX ix_session_templates_is_active ON session_templates (is_active);
CREATE INDEX ix_session_templates_name ON session_templates (name);

-- ---------------------------------------------------------------------------------------------
-- virtual folders
-- ---------------------------------------------------------------------------------------------
CREATE TABLE vfolders (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    host            varchar(128) NOT NULL,
    domain_name     varchar(64) NOT NULL DEFAULT 'default',
    quota_scope_id  varchar(64),
    name            varchar(128) NOT NULL,
    usage_mode      vfolderusagemode NOT NULL DEFAULT 'general',
    permission      vfolderpermission DEFAULT 'rw',
    max_files       integer NOT NULL DEFAULT 1000,
    max_size        integer,
    num_files       integer NOT NULL DEFAULT 0,
    cur_size        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used       timestamptz DEFAULT now(),
    creator         varchar(128),
    unmanaged_path  varchar(512),
    ownership_type  vfolderownershiptype NOT NULL DEFAULT 'user',
    "user"          uuid REFERENCES users (uuid),
    "group"         uuid REFERENCES groups (id),
    cloneable       boolean NOT NULL DEFAULT false,
    status          varchar(64) NOT NULL DEFAULT 'ready',
    status_history  jsonb,
    status_changed  timestamptz,
    CONSTRAINT ownership_type_match_with_user_or_group CHECK (
        (ownership_type = 'user' AND "user" IS NOT NULL)
        OR (ownership_type = 'group' AND "group" IS NOT NULL)
    ),
    CONSTRAINT either_one_of_user_or_group CHECK (
        ("user" IS NULL AND "group" IS NOT NULL) OR ("user" IS NOT NULL AND "group" IS NULL)
    )
);
CREATE INDEX ix_vfolders_host ON vfolders (host);
CREATE INDEX ix_vfolders_status ON vfolders (status);

CREATE TABLE vfolder_permissions (
    id          uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    permission  vfolderpermission DEFAULT 'rw',
    vfolder     uuid NOT NULL REFERENCES vfolders (id) ON UPDATE CASCADE ON DELETE CASCADE,
    "user"      uuid NOT NULL REFERENCES users (uuid)
);

CREATE TABLE vfolder_invitations (
    id           uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    permission   vfolderpermission DEFAULT 'rw',
    inviter      varchar(256),
    invitee      varchar(256) NOT NULL,
    state        vfolderinvitationstate DEFAULT 'pending',
    created_at   timestamptz DEFAULT now(),
    modified_at  timestamptz,
    vfolder      uuid NOT NULL REFERENCES vfolders (id) ON UPDATE CASCADE ON DELETE CASCADE
);

CREATE TABLE vfolder_attachment (
    vfolder  uuid NOT NULL REFERENCES vfolders (id) ON DELETE CASCADE,
    kernel   uuid NOT NULL REFERENCES kernels (id) ON DELETE CASCADE,
    PRIMARY KEY (vfolder, kernel)
);
